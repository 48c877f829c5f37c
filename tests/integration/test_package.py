"""The prediction function's package, as `sam build` makes it: what its import pulls in, and how long it takes.

Like Powertools' own import-time tests: a budget checked as code. The budget is
about twice the median import measured on a 2-core machine (`cold_import_ms_median` in
benchmarks/results/), so it fails when an import is added to the cold path, not when the
machine is busy.
"""

import json
import statistics
import subprocess

import numpy as np
import pytest

from tests.conftest import ROOT, TEST_BUILDS

pytestmark = pytest.mark.integration
PACKAGE = TEST_BUILDS / "build" / "PredictFunction"  # what the stack fixture built and deployed
RUNTIME = ROOT / ".local" / "localstack" / "runtimes" / "python3.12" / "bin" / "python"
IMPORT_BUDGET_MS = 250
PACKAGE_BUDGET_MB = 12  # the serving target (docs/serving.md, the package)
FORBIDDEN = ("boto3", "botocore.client", "botocore.session", "pandas", "sklearn", "mlflow", "catboost",
             "lightgbm", "optuna", "aws_xray_sdk", "pydantic", "scipy",
             # Powertools' resolvers (the API routes by a dict: handlers/api.py says why) and what they pull in
             "aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes", "asyncio",
             # imported on the first large request only (serving/model/features.py: TYPED_DECODE_BYTES)
             "msgspec")
PROBE = """
import json, sys, time
started = time.perf_counter()
import handlers.api
took = (time.perf_counter() - started) * 1000
print(json.dumps({"ms": took, "modules": sorted(sys.modules)}))
"""


def import_handler() -> dict:
    # the runtime's Python (boto3 installed, as on Lambda), the package's own bytecode,
    # nothing written next to it (Lambda's code folder is read-only)
    result = subprocess.run(
        [str(RUNTIME), "-c", PROBE], cwd=PACKAGE, capture_output=True, text=True, timeout=60,
        env={"MODEL_BUCKET": "bucket", "PYTHONPATH": str(PACKAGE), "PYTHONDONTWRITEBYTECODE": "1",
             "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def imports(stack):  # the stack fixture ran `sam build`
    assert (PACKAGE / "handlers" / "api.py").exists(), f"no package at {PACKAGE}"
    return [import_handler() for _ in range(5)]


def test_importing_the_handler_pulls_in_no_heavy_or_training_library(imports):
    loaded = set(imports[0]["modules"])
    assert not loaded & set(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
    assert "numpy" in loaded and "orjson" in loaded  # the probe does see the package's modules


def test_importing_the_handler_stays_within_its_budget(imports):
    median = statistics.median(run["ms"] for run in imports)
    assert median <= IMPORT_BUDGET_MS, f"import took {median:.0f} ms (budget {IMPORT_BUDGET_MS} ms)"


def test_the_package_ships_bytecode_and_no_tests(imports):
    compiled = list((PACKAGE / "serving").rglob("__pycache__/*.cpython-312.pyc"))
    assert len(compiled) >= 20
    assert not list(PACKAGE.glob("numpy/**/tests"))
    assert not (PACKAGE / "bin").exists()


def test_the_package_holds_nothing_the_functions_never_import(imports):
    # stubs, headers, build tools, test extensions and unused submodules (functions/Makefile's PRUNE)
    assert not list(PACKAGE.rglob("*.pyi")) and not list(PACKAGE.rglob("*.pxd"))
    for pruned in ("numpy/f2py", "numpy/testing", "numpy/_core/include", "numpy/fft",
                   "aws_lambda_powertools/event_handler", "aws_lambda_powertools/utilities/parser"):
        assert not (PACKAGE / pruned).exists(), pruned
    assert not list(PACKAGE.glob("numpy/_core/_*_tests.*.so"))
    assert (PACKAGE / "numpy" / "random").is_dir()  # the drift function samples with it


EXACT_IN_PACKAGE = """
import json, sys
import numpy as np
from serving.model.predictor import served_explanations, served_predictions
worst = {}
for path in sys.argv[1:]:
    case = dict(np.load(path))
    X, native, shap = case.pop("_matrix"), case.pop("_native"), case.pop("_native_shap")
    served = served_predictions(case, X)
    explained = served_explanations(case, X)
    relative = str(case["task"]) == "regression"  # regression values are compared relative to their size
    gap = np.abs(served - native) / (np.maximum(1.0, np.abs(native)) if relative else 1.0)
    shap_gap = np.abs(explained - shap) / (np.maximum(1.0, np.abs(shap)) if relative else 1.0)
    worst[path] = [float(gap.max()), float(shap_gap.max())]
print(json.dumps(worst))
"""


def test_every_test_model_is_served_and_explained_exactly_from_the_package(imports, tmp_path):
    # the pruned package (numpy without what no function imports) evaluates both layouts, every
    # task, CTRs and categoricals, and explains them, as the native libraries do
    from tests.models import CASES, case

    files = []
    for name in sorted(CASES):
        model = case(name)
        files.append(tmp_path / f"{name}.npz")
        np.savez(files[-1], **model.arrays, _matrix=model.matrix, _native=model.native,
                 _native_shap=model.native_shap)
    result = subprocess.run([str(RUNTIME), "-c", EXACT_IN_PACKAGE, *map(str, files)], cwd=PACKAGE,
                            capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(PACKAGE), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    worst = json.loads(result.stdout)
    assert len(worst) == len(CASES) >= 10
    assert max(p for p, _ in worst.values()) <= 1e-12 and max(s for _, s in worst.values()) <= 1e-9, worst


LARGE_REQUEST = """
import json, sys
import numpy as np
from serving.model.features import TYPED_DECODE_BYTES, FeatureSchema
schema = FeatureSchema([{"name": f"x{i}", "type": "numeric", "nullable": False} for i in range(30)])
rows = np.random.default_rng(0).normal(size=(200, 30)).tolist()
raw = json.dumps({"instances": [{f"x{i}": v for i, v in enumerate(row)} for row in rows]}).encode()
assert len(raw) >= TYPED_DECODE_BYTES and "msgspec" not in sys.modules
X = schema.matrix(raw, max_rows=200)
print(json.dumps({"equal": X.tolist() == rows, "msgspec": "msgspec" in sys.modules}))
"""


def test_a_large_request_is_decoded_by_the_packages_msgspec(imports):
    result = subprocess.run([str(RUNTIME), "-c", LARGE_REQUEST], cwd=PACKAGE, capture_output=True, text=True,
                            timeout=60, env={"PYTHONPATH": str(PACKAGE), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {"equal": True, "msgspec": True}


def test_the_zipped_package_stays_within_its_budget(imports):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in PACKAGE.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(PACKAGE))
    megabytes = len(buffer.getvalue()) / 1e6
    # 9.8 MB measured with numpy built without BLAS (16.1 MB with numpy's wheel and its OpenBLAS)
    assert megabytes <= PACKAGE_BUDGET_MB, f"{megabytes:.1f} MB zipped (budget {PACKAGE_BUDGET_MB} MB)"


NUMPY_BUILD = """
import json, numpy as np
print(json.dumps({**np.show_config(mode="dicts")["Build Dependencies"],
                  "simd_baseline": np.show_config(mode="dicts")["SIMD Extensions"]["baseline"]}))
"""


def test_the_package_numpy_is_built_without_blas_for_lambdas_glibc(imports):
    # functions/build_numpy.sh: no OpenBLAS (nor its gfortran and quadmath) to unpack and load on a
    # cold start, and auditwheel's verdict that nothing needs a glibc newer than the runtime's 2.34
    assert not (PACKAGE / "numpy.libs").exists()
    [wheel] = PACKAGE.glob("numpy-*.dist-info/WHEEL")
    assert "Tag: cp312-cp312-manylinux_2_34_x86_64" in wheel.read_text().splitlines()
    result = subprocess.run([str(RUNTIME), "-c", NUMPY_BUILD], cwd=PACKAGE, capture_output=True, text=True,
                            timeout=60, env={"PYTHONPATH": str(PACKAGE), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    dependencies = json.loads(result.stdout)
    assert dependencies["blas"]["name"] == dependencies["lapack"]["name"] == "none", dependencies
    # the CPU features it may assume everywhere are numpy's wheels' (x86-64-v2), not the build machine's
    assert dependencies["simd_baseline"] == ["X86_V2"], dependencies
