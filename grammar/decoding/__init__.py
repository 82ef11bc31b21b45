"""Decoding and listening: the grammar decoder, the recognition chain, streaming spotting, its demo and test streams."""
