r"""The method's Table 1 settings: audio-input dropout x layers x features, 100 epochs each.

Pick one setting after the colon:

  python -m deepsynth_jax.train \
      --config=experiments/configs/table1.py:drop75_l10_c512 --workdir=runs/table1/drop75_l10_c512

`python -m experiments.table1` runs all six (or `--grid=full`, all twelve) and
`python -m experiments.report` prints the table. Published reference (a different dataset, so
compare the protocol, not the digits): drop75_l10_c512 reached train 1.45 / validation 2.41 nats.
"""

import itertools

from experiments.configs import default

DROPOUTS = (0.5, 0.75)
LAYERS = (7, 10)
FEATURES = (128, 256, 512)

# The six settings of the method's Table 1, in its row order: (dropout, layers, features) =
# (0.5 | 0.75) x ((7, 128), (7, 256), (10, 512)).
SETTINGS = (
    "drop50_l7_c128",
    "drop50_l7_c256",
    "drop50_l10_c512",
    "drop75_l7_c128",
    "drop75_l7_c256",
    "drop75_l10_c512",
)
# The full 2 x 2 x 3 grid.
GRID = tuple(f"drop{round(d * 100)}_l{n}_c{c}"
             for d, n, c in itertools.product(DROPOUTS, LAYERS, FEATURES))


def parse_setting(name: str) -> tuple[float, int, int]:
  """'drop75_l10_c512' -> (0.75, 10, 512)."""
  try:
    drop, layers, channels = name.split("_")
    assert drop.startswith("drop") and layers.startswith("l") and channels.startswith("c")
    return int(drop[4:]) / 100.0, int(layers[1:]), int(channels[1:])
  except (ValueError, AssertionError):
    raise ValueError(f"unknown Table 1 setting {name!r}; expected dropNN_lL_cC, one of "
                     f"{', '.join(GRID)}") from None


def get_config(setting: str = "drop75_l10_c512"):
  dropout, layers, channels = parse_setting(setting)
  config = default.get_config()
  config.wavenet.audio_dropout = dropout
  config.wavenet.num_layers = layers
  config.wavenet.layers_per_stack = layers
  config.wavenet.channels = channels
  config.wavenet.skip_channels = channels
  config.num_epochs = 100
  return config
