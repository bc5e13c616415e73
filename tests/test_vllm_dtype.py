"""vLLM's dtype=auto on CPU: the choice from the CPU's flags (faked flag lists, no engine)."""
from actors.policy import cpu_auto_dtype, cpu_flags

PLAIN_X86 = ["fpu", "sse2", "avx2", "avx512f", "avx512bw"]


def test_x86_without_bfloat16_instructions_runs_float32():
    dtype, reason = cpu_auto_dtype(PLAIN_X86, "x86_64")
    assert dtype == "float32"
    assert "no bfloat16" in reason


def test_x86_with_avx512_bf16_but_no_amx_runs_float32():
    dtype, reason = cpu_auto_dtype(PLAIN_X86 + ["avx512_bf16"], "x86_64")
    assert dtype == "float32"
    assert "no AMX" in reason


def test_x86_with_amx_bf16_keeps_bfloat16():
    assert cpu_auto_dtype(PLAIN_X86 + ["avx512_bf16", "amx_tile", "amx_bf16"], "x86_64")[0] == "bfloat16"
    assert cpu_auto_dtype(PLAIN_X86 + ["amx_bf16"], "AMD64")[0] == "bfloat16"


def test_off_x86_leaves_vllms_choice():
    assert cpu_auto_dtype(["fp", "asimd", "bf16"], "aarch64")[0] == "auto"
    assert cpu_auto_dtype([], "aarch64")[0] == "auto"


def test_flags_are_read_as_words():
    flags = cpu_flags()
    assert isinstance(flags, list) and all(isinstance(f, str) and " " not in f for f in flags)
