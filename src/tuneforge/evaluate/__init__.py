"""Evaluation: streaming counts → metrics (scikit-learn), and the Markdown/HTML report with plots."""
