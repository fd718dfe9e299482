"""What every fmlab task shares."""

import lightning as L


class Task(L.LightningModule):
    """A LightningModule that is cheap for Lightning to drive at small batch sizes."""

    def __setattr__(self, name: str, value) -> None:
        # Lightning records the name of the running hook on the module around 40 times a
        # training step. nn.Module.__setattr__ first checks the value against parameters,
        # buffers and submodules (Python-level isinstance checks), 0.1 ms a step in all: a string
        # is none of those, so store it directly, as nn.Module would in the end.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
