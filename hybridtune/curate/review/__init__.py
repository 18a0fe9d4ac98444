"""Human review web app for curated sessions (FastAPI + one static HTML/JS page). See app.py."""
