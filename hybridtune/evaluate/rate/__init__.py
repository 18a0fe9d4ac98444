"""`hybridtune rate`: blind side-by-side human ratings of two variants' replies (app.py: the page,
ratings.py: tasks, stored ratings, export/import for remote raters)."""
