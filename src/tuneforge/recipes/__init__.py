"""Recipes: the verbs users run, each a short story composed from the steps."""
