"""``rl4rec train``: the original's ``rl_train.py`` flags, plus algorithm and service selection."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

# flags that go to RecPolicy as they are (None = the policy's default)
LLM_FLAGS = ("max_new_tokens", "temperature", "top_p", "history_len", "prompt_template", "response_prefix", "lora_r",
             "micro_batch_size")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="RL-train a policy against the retrieval service's rewards",
        description=(
            "Sample users, generate texts with the policy, score them with the retrieval service and "
            "update the policy (GRPO or REINFORCE). Writes training_log.jsonl and checkpoints under "
            "--checkpoint_dir."
        ),
    )
    a = p.add_argument
    a("--dataset_name", default="ml-100k", help="prepared dataset (default: %(default)s)")
    a("--num_steps", type=int, default=1000, help="training steps (default: %(default)s)")
    a("--batch_size", type=int, default=16, help="generated texts per step = users x group_size (default: %(default)s)")
    a("--group_size", type=int, default=4, help="samples per user, compared by GRPO (default: %(default)s)")
    a("--learning_rate", type=float, default=None, help="default: 1e-5 for an LLM, 0.05 for --use_dummy")
    a("--policy_model", default="smollm2-135m-instruct", help="alias, HF name or local folder (default: %(default)s)")
    a("--use_dummy", action="store_true", help="the LLM-free DummyRecPolicy (trains in seconds)")
    a("--init_from", default=None,
      help="start from this policy checkpoint (e.g. `rl4rec sft`'s checkpoint_final): merged into the base, "
      "the KL reference, and the source of the prompt settings unless given here")
    a("--lora", action=argparse.BooleanOptionalAction, default=True, help="LoRA adapters (default) or full fine-tuning")
    a("--algorithm", choices=("grpo", "reinforce"), default="grpo")
    a("--kl_coef", type=float, default=0.0, help="KL penalty against the starting policy (default: off)")
    a("--clip_eps", type=float, default=None, help="PPO clip range (default: off)")
    a("--ppo_epochs", type=int, default=1, help="passes over each batch (needs --clip_eps when > 1)")
    a("--reward", default="ndcg@10",
      help="reward name (ndcg@k, hit@k, mrr, mixed, rank_pct, log_rank, top5_diversity) or pkg.module:fn")
    a("--num_negatives", type=int, default=0, help="rank against N sampled negatives instead of all items")
    a("--max_new_tokens", type=int, default=None, help="LLM generation length")
    a("--temperature", type=float, default=None, help="LLM sampling temperature")
    a("--top_p", type=float, default=None, help="LLM nucleus sampling (default: off)")
    a("--history_len", type=int, default=None, help="last N history items in the prompt (default: the template's)")
    a("--prompt_template", default=None,
      help="next_item (default), compelling, plain, or a format string with {history}")
    a("--response_prefix", default=None,
      help='start of the answer, e.g. \'The user will like "\' (one quoted title); {item_noun} is filled in')
    a("--lora_r", type=int, default=None, help="LoRA rank (default: 16)")
    a("--micro_batch_size", type=int, default=None, help="sequences per forward/backward (bounds memory; default: 8)")
    a("--checkpoint_dir", default=None, help="default: checkpoints/{dataset_name}_rl")
    a("--save_every", type=int, default=100, help="checkpoint every N steps (default: %(default)s)")
    a("--log_every", type=int, default=10, help="console line every N steps (default: %(default)s)")
    a("--resume", action="store_true", help="continue from the latest checkpoint in --checkpoint_dir")
    a("--overwrite", action="store_true", help="delete an existing run in --checkpoint_dir and start over")
    a("--seed", type=int, default=0)
    a("--device", default="cpu")
    a("--service", choices=("auto", "local", "ray"), default="auto",
      help="ray: attach to the running RetrievalService actor; local: build it in-process; auto: ray if found")
    a("--scorer", choices=("auto", "hybrid", "cosine"), default="auto",
      help="--service local: the tuned hybrid scorer when `rl4rec tune-retrieval` wrote settings (auto), "
      "required (hybrid), or plain cosine")
    a("--emb_model_name", default="all-MiniLM-L6-v2", help="embedding model of the item embeddings")
    a("--emb_type", default="item")
    a("--actor_name", default="RetrievalService")
    a("--namespace", default="rl4rec")
    a("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS)")
    a("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.common import config_from_args
    from rl4rec_core.data import load_dataset
    from rl4rec_core.policy.factory import build_policy
    from rl4rec_core.retrieval.source import ServiceConfig, connect_reward_source
    from rl4rec_core.training.trainer import RLTrainer, seed_everything
    from rl4rec_core.training.config import TrainConfig

    cfg = config_from_args(TrainConfig, args, progress=not args.no_progress)
    service_cfg = ServiceConfig(
        mode=args.service, emb_model_name=args.emb_model_name, emb_type=args.emb_type,
        actor_name=args.actor_name, namespace=args.namespace, address=args.address, device=args.device,
        scorer=args.scorer,
    )
    dataset = load_dataset(cfg.dataset_name)
    source, description = connect_reward_source(cfg.dataset_name, service_cfg)
    print(description)
    seed_everything(cfg.seed)
    algo_overrides = {"ppo_epochs": args.ppo_epochs, **({"clip_eps": args.clip_eps} if args.clip_eps else {})}
    llm_kwargs = {k: v for k in LLM_FLAGS if (v := getattr(args, k)) is not None}
    if cfg.use_dummy and llm_kwargs:
        log.warning("--use_dummy ignores %s", ", ".join(f"--{k}" for k in llm_kwargs))
        llm_kwargs = {}
    policy = build_policy(cfg, dataset, device=args.device, algo_overrides=algo_overrides, **llm_kwargs)
    print(f"Policy: {'DummyRecPolicy' if cfg.use_dummy else cfg.policy_model}; output: {cfg.output_dir}")
    summary = RLTrainer(cfg, policy, source, dataset).train()
    print(
        f"✓ Training done: {summary['steps']} steps; avg reward {summary['first_avg_reward']:.4f} (first step) -> "
        f"{summary['last_avg_reward']:.4f} (last step); log: {summary['training_log']}"
    )
    return 0
