"""Data: read tables, clean text, map labels, split, check tokenizer coverage, encode and batch."""
