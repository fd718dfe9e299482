"""Model FLOPs per token and model FLOPs utilisation (MFU), as PaLM defines them (Chowdhery et al.
2022, appendix B) and nanoGPT's ``estimate_mfu`` computes them: a training token costs 6 FLOPs per
parameter (2 forward, 4 backward) plus attention's 12·L·H·Q·T, and MFU is the model FLOP/s reached
over the accelerator's peak. Counting model FLOPs, not hardware ones, a recomputed activation earns
nothing. Each net counts its own FLOPs per token (``flops_per_token()``: nets
import only torch); this module holds the peaks and the utilisation, and imports nothing.
"""

# Dense bf16 tensor-core peak per GPU (no sparsity), from NVIDIA's datasheets, matched in this
# order against torch.cuda.get_device_name() ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3").
# The H100 SXM and H200 share the GH100 compute die; the PCIe H100 is clocked lower.
PEAK_BF16_FLOPS = [
    ("A100", 312e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
]


def peak_flops(device_name: str | None) -> float | None:
    """The accelerator's dense bf16 peak in FLOP/s, or None: a CPU or a GPU not in the table."""
    if device_name:
        for key, peak in PEAK_BF16_FLOPS:
            if key in device_name:
                return peak
    return None


def mfu(flops_per_s: float | None, device_name: str | None, devices: int = 1) -> float | None:
    """Model FLOPs utilisation of ``devices`` accelerators together reaching ``flops_per_s``;
    None where the peak is unknown (a CPU's depends on its cores, clocks and vector units) or
    nothing was measured."""
    peak = peak_flops(device_name)
    return flops_per_s / (peak * devices) if peak and flops_per_s is not None else None
