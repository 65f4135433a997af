"""Type aliases shared by the metric modules."""

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd

# What the metric functions accept for a series of samples: a Series keeps its index.
ArrayLike: TypeAlias = pd.Series | np.ndarray | Sequence[float]
# Power input: a series/array, or a whole ride whose ``power_w`` column is used.
PowerInput: TypeAlias = ArrayLike | pd.DataFrame
