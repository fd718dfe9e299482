"""Lightning's EMA of the weights, with testing a checkpoint after fit fixed to use the average."""

from lightning.pytorch.callbacks import EMAWeightAveraging as LightningEMA
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeightAveraging(LightningEMA):
    """``lightning.pytorch.callbacks.EMAWeightAveraging`` (Lightning 2.6), except when a
    checkpoint is loaded outside fitting.

    Lightning's callback saves the averaged weights as the checkpoint's ``state_dict`` and the raw
    ones as ``current_model_state``. Loading a checkpoint, it puts the raw weights back into the
    model whenever its averaged copy exists, which after ``fit`` includes
    ``trainer.test(ckpt_path="best")``: the test then measures the raw weights, not the average
    that was validated and checkpointed. Here the raw weights are restored only to resume fitting.
    """

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
        # Otherwise the model already holds checkpoint["state_dict"]: the averaged weights.
