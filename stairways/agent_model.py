"""The agent pyfunc as MLflow models-from-code: loading the model runs this file; nothing is unpickled.

``stairways.registry`` saves this file into every registered version (its SHA-256 in the version's integrity
manifest), so :func:`mlflow.pyfunc.load_model` builds :class:`stairways.agent_pyfunc.AgentPyfunc` from code instead of
reading a cloudpickled object. The SB3 weights are then read ``weights_only`` by its ``load_context``.
"""

from mlflow.models import set_model

from stairways.agent_pyfunc import AgentPyfunc

set_model(AgentPyfunc())
