"""Training experiments: RevDEQ against classical DEQs and explicit networks on real
data (Fashion-MNIST image classification, King James Bible character LM).

``deq-dynamics train TASK`` is the entry point; see :func:`trainer.run_task`.
"""

from .arms import ALL_ARMS as ALL_ARMS, DEFAULT_ARMS as DEFAULT_ARMS
from .config import (
    ImageConfig as ImageConfig,
    TextConfig as TextConfig,
    TrainConfig as TrainConfig,
    get_config as get_config,
    get_preset as get_preset,
)
from .tasks import ImageTask as ImageTask, TextTask as TextTask, make_task as make_task
from .trainer import (
    memory_sweep as memory_sweep,
    results_table as results_table,
    run_task as run_task,
    train_arm as train_arm,
)
