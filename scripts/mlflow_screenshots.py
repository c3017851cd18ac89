"""Screenshots of the MLflow UI for the README (docs/screenshots/*.png), in headless Chromium.

    python scripts/mlflow_screenshots.py                            # two quick runs in a temp folder, then the shots
    python scripts/mlflow_screenshots.py --workdir DIR --skip-run   # shots of the store already in DIR/mlruns

Needs ``chromium`` (Debian: ``apt-get install -y chromium``) and ml-100k prepared under ``data/`` with its
embeddings under ``data_emb/`` (``RL4REC_DATA_DIR`` / ``RL4REC_EMB_DIR`` override them). It runs
``rl4rec run --quick`` (seeds 0 and 1, so the runs list and charts hold two runs), starts ``mlflow ui`` on the
run's SQLite store, finds the experiment, the run, its reward plot and the registered version through the REST
API, and drives Chromium over the DevTools protocol (no Playwright): it sets the UI's local settings first
(the "Model training" workflow rather than the GenAI traces view, the Assistant side panel closed), then waits
for each page's content before it captures it. Each PNG is 1400x1000.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1400, 1000
# The UI keeps these in localStorage (key + "_v1", JSON values); see mlflow/server/js useLocalStorage.
LOCAL_SETTINGS = {
    "mlflow.workflowType_v1": "machine_learning",  # runs, not the GenAI traces overview
    "mlflow.assistant.panelOpen_v1": False,  # the Assistant panel would take a third of the width
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True,
}


def sh(cmd: list[str], **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def api(base: str, path: str, body: dict | None = None) -> dict:
    url = f"{base}/ajax-api/2.0/mlflow/{path}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def wait_http(url: str, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, ws_url: str):
        self.ws = connect(ws_url, max_size=64 * 2**20, open_timeout=30)
        self.n = 0
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        return r.get("result", {}).get("value")

    def goto(self, url: str, ready_js: str, timeout: float = 60, settle: float = 3.0) -> bool:
        self.call("Page.navigate", url="about:blank")
        self.call("Page.navigate", url=url)
        return self.wait(ready_js, timeout, settle)

    def wait(self, ready_js: str, timeout: float = 60, settle: float = 3.0) -> bool:
        end = time.time() + timeout
        ok = False
        while time.time() < end:
            try:
                ok = bool(self.js(ready_js))
            except RuntimeError:
                ok = False
            if ok:
                break
            time.sleep(0.5)
        time.sleep(settle)  # charts animate in; images decode
        return ok

    def shot(self, path: Path) -> None:
        r = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path.write_bytes(base64.b64decode(r["data"]))
        print(f"  {path} ({path.stat().st_size // 1024} KB)", flush=True)


def text_has(*needles: str) -> str:
    return " && ".join(f"document.body && document.body.innerText.includes({json.dumps(s)})" for s in needles)


def run_pipeline(workdir: Path, seeds: list[int]) -> None:
    env = dict(os.environ)
    env.setdefault("RL4REC_EMB_BACKEND", "sentence-transformers")
    env.setdefault("RL4REC_DATA_DIR", str(REPO / "data"))
    env.setdefault("RL4REC_EMB_DIR", str(REPO / "data_emb"))
    env["RL4REC_CHECKPOINT_ROOT"] = str(workdir)
    env.pop("MLFLOW_TRACKING_URI", None)  # the store goes to workdir/mlruns
    for seed in seeds:
        sh(["rl4rec", "run", "--quick", "--seed", str(seed)], cwd=workdir, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, help="folder for the runs and mlruns/ (default: a new temp folder)")
    ap.add_argument("--skip-run", action="store_true", help="use the store already in WORKDIR/mlruns")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one quick pipeline run per seed")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--port", type=int, default=5055)
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    args = ap.parse_args()

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="rl4rec-shots-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.skip_run:
        run_pipeline(workdir, args.seeds)
    db = workdir / "mlruns" / "mlflow.db"
    if not db.exists():
        sys.exit(f"no MLflow store at {db}")
    args.out.mkdir(parents=True, exist_ok=True)

    base = f"http://127.0.0.1:{args.port}"
    procs: list[subprocess.Popen] = []
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        ui_log = open(workdir / "mlflow-ui.log", "w")
        procs.append(subprocess.Popen(
            ["mlflow", "ui", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1",
             "--port", str(args.port), "--workers", "1"],
            stdout=ui_log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True))
        wait_http(f"{base}/health", 120)

        exp = api(base, "experiments/get-by-name?experiment_name=rl4rec")["experiment"]
        exp_id = exp["experiment_id"]
        kind = {t["key"]: t["value"] for t in exp.get("tags", [])}.get("mlflow.experimentKind")
        query = {"experiment_ids": [exp_id], "order_by": ["attributes.start_time DESC"]}
        runs = api(base, "runs/search", query)["runs"]
        run_id = next(r["info"]["run_id"] for r in runs if r["info"]["status"] == "FINISHED")
        run_ids = [r["info"]["run_id"] for r in runs]
        plots = api(base, f"artifacts/list?run_id={run_id}&path=plots").get("files", [])
        plot = next((f["path"] for f in plots if f["path"].endswith(".png")), None)
        models = api(base, "registered-models/search")["registered_models"]
        model = models[0]["name"]
        version = max(int(v["version"]) for v in api(
            base, "model-versions/search?filter=" + urllib.parse.quote(f"name='{model}'"))["model_versions"])
        print(f"experiment {exp_id} (experimentKind={kind}), {len(runs)} runs, run {run_id}, plot {plot}, "
              f"model {model} v{version}", flush=True)

        procs.append(subprocess.Popen(
            [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-port=9333", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_http("http://127.0.0.1:9333/json/version", 60)
        with urllib.request.urlopen("http://127.0.0.1:9333/json/list") as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        page = Page(target["webSocketDebuggerUrl"])

        # local settings first, on the UI's origin
        page.goto(f"{base}/", "document.readyState === 'complete'", settle=1)
        page.js("; ".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(json.dumps(v))})"
                          for k, v in LOCAL_SETTINGS.items()))

        exp_url = f"{base}/#/experiments/{exp_id}"
        run_url = f"{exp_url}/runs/{run_id}"
        shots = [
            ("mlflow_runs.png", f"{exp_url}?workflowType=machine_learning",
             text_has("rl4rec-pipeline-", "matching run")),
            ("mlflow_run_overview.png", run_url, text_has("Parameters", "Source")),
            # the run's step charts, narrowed to train/* with the charts' search box
            ("mlflow_run_metrics.png", f"{run_url}/model-metrics", text_has("eval_test"),
             ("type", "train/", text_has("avg_reward") + " && !document.body.innerText.includes('eval_test')")),
            # both runs' reward charts side by side: the runs page's chart view, searched for "reward"
            ("mlflow_compare_charts.png", f"{exp_url}?workflowType=machine_learning", text_has("matching run"),
             ("click", 'input[value="CHART"]', text_has("eval_test")),
             ("type", "reward", text_has("avg_reward") + " && !document.body.innerText.includes('eval_test')")),
            ("mlflow_reward_metric.png",
             f"{base}/#/metric/?runs={urllib.parse.quote(json.dumps(run_ids))}"
             f"&metric={urllib.parse.quote(json.dumps('train/avg_reward'))}"
             f"&experiments={urllib.parse.quote(json.dumps([exp_id]))}"
             f"&plot_metric_keys={urllib.parse.quote(json.dumps(['train/avg_reward']))}"
             "&plot_layout={}&x_axis=step&y_axis_scale=linear&line_smoothness=1&show_point=true"
             "&deselected_curves=[]&last_linear_y_axis_range=[]",
             "document.querySelectorAll('.js-plotly-plot, svg.main-svg').length > 0"),
            ("mlflow_model_version.png", f"{base}/#/models/{urllib.parse.quote(model)}/versions/{version}",
             text_has(f"Version {version}", "Registered")),
        ]
        if plot:
            shots.insert(3, ("mlflow_reward_plot.png", f"{run_url}/artifacts/{plot}",
                             text_has(plot) + " && Array.from(document.images).some(i => i.complete "
                             "&& i.naturalWidth > 300)"))
        for name, url, ready, *steps in shots:
            print(f"{name}: {url}", flush=True)
            ok = page.goto(url, ready, settle=1.0 if steps else 3.0)
            for kind, arg, then in steps:
                if kind == "click":
                    page.js(f"document.querySelector({json.dumps(arg)}).click()")
                else:  # type into the charts' search box
                    page.js("Array.from(document.querySelectorAll('input')).find(i => "
                            "(i.placeholder || '').toLowerCase().includes('metric charts')).focus()")
                    page.call("Input.insertText", text=arg)
                ok = page.wait(then)
                ready = then
            if not ok:
                print(f"  warning: the page did not show what was waited for ({ready}); captured anyway", flush=True)
            page.shot(args.out / name)
    finally:
        for p in reversed(procs):  # each in its own session: the UI's uvicorn workers, Chromium's helpers
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
