"""The ground every layer stands on: the error hierarchy (`core.errors`), derived seeds (`core.seeding`),
content digests (`core.digest`) and the agent's observation/action spec (`core.spec`). It imports nothing of
the project, and every other package may import it. Import from the modules."""

__all__: list[str] = []
