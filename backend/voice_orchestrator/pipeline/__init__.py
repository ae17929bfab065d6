"""One dialogue turn and what surrounds it: sentence chunking, sessions, admission."""
