"""Serving: the predictor behind `tuneforge.load`, the CLI predict/embed verbs and (later) the HTTP app."""
