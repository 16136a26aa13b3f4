"""The ground every layer stands on: the error hierarchy, derived seeds, content digests and the agent's
observation/action spec. It imports nothing of the project, and every other package may import it."""
