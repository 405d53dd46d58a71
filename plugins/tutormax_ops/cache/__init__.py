"""Redis cache operations: pattern clearing (SCAN + UNLINK) and warming (the cache DAGs)."""
