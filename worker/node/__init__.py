"""What a worker node does with a call: decide, answer, follow its events, finish it."""
