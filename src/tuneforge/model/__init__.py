"""Models: resolve names to folders, build/load with a task head, extend vocabularies, save self-describing artifacts."""
