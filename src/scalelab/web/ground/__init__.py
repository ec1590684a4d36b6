"""Answers grounded in documents: read and cut them into passages (`docs`), retrieve with BM25 (`index`),
answer with a citation (`answer`), and measure all of it on the world, whose answers are known (`evaluate`)."""
