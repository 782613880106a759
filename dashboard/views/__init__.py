"""Dashboard pages: each file is one page script that `dashboard/app.py` declares."""
