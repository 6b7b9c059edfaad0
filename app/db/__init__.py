"""Database plumbing shared by every stage: metadata, column types, engine and sessions."""
