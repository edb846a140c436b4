"""PostgreSQL storage through psycopg 3: the only package that speaks SQL."""
