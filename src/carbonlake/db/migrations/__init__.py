"""The schema's Alembic revisions (``versions/``), applied when a database is opened."""
