"""Tests of :mod:`pytest_crewguard.pricing`: genai-prices lookups, overrides, price files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_crewguard.errors import ConfigError
from pytest_crewguard.pricing import ModelPrice, PriceTable
from pytest_crewguard.usage import Usage

# --- genai-prices ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o-mini-2024-07-18"),
        ("azure", "gpt-4o-mini-2024-07-18"),
        ("openrouter", "openai/gpt-4o-mini"),
        (None, "gpt-4o-mini"),
        ("some-local-proxy", "gpt-4o-mini"),  # unknown provider: matched by model name
    ],
)
def test_gpt_4o_mini_hand_arithmetic(provider: str | None, model: str) -> None:
    # $0.15/M input, $0.60/M output: 1,200 * 0.15 + 300 * 0.60 = 180 + 180 = 360 micro-dollars.
    assert PriceTable().cost(provider, model, Usage(input_tokens=1_200, output_tokens=300)) == 0.00036


def test_cached_input_gpt_4o_mini() -> None:
    # Published: input $0.15/M, cached input $0.075/M, output $0.60/M. 1,200 input of which 1,000
    # cached: 200 * 0.15 + 1,000 * 0.075 + 300 * 0.60 = 30 + 75 + 180 = 285 micro-dollars.
    usage = Usage(input_tokens=1_200, output_tokens=300, cached_tokens=1_000)
    assert PriceTable().cost("openai", "gpt-4o-mini", usage) == 0.000285


def test_cache_read_and_write_claude_haiku_4_5() -> None:
    # Published: input $1/M, output $5/M, cache read $0.10/M, 5-minute cache write $1.25/M.
    # 1,200 input = 100 uncached + 1,000 read + 100 written:
    # 100 * 1 + 1,000 * 0.10 + 100 * 1.25 + 300 * 5 = 100 + 100 + 125 + 1,500 = 1,825 micro-dollars.
    usage = Usage(input_tokens=1_200, output_tokens=300, cached_tokens=1_000, cache_write_tokens=100)
    assert PriceTable().cost("anthropic", "claude-haiku-4-5", usage) == 0.001825


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "non-existent-model"),  # recorded by crewai's own tests (a 404)
        (None, "my-private-finetune"),
        ("unknown-provider", "my-private-finetune"),
        ("openai", None),
        ("openai", ""),
    ],
)
def test_unknown_model_is_unpriced_not_free(provider: str | None, model: str | None) -> None:
    assert PriceTable().cost(provider, model, Usage(input_tokens=1_000, output_tokens=1_000)) is None


def test_version_names_the_library() -> None:
    from importlib.metadata import version

    assert PriceTable().version == f"genai-prices {version('genai-prices')}"


def test_importing_pricing_loads_neither_genai_prices_nor_yaml() -> None:
    code = "import sys, pytest_crewguard.pricing; sys.exit(bool({'genai_prices', 'yaml'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


# --- overrides -------------------------------------------------------------------------------

PRICE_FILES = {
    "prices.yaml": """\
my-finetune:
  input: 0.30        # USD per million input tokens
  cached_input: 0.15
  output: 1.20
gpt-4o-mini:
  input: 1
  output: 2
""",
    "prices.yml": """\
models:
  my-finetune: {input: 0.30, cached_input: 0.15, output: 1.20}
  gpt-4o-mini: {input: 1, output: 2}
""",
    "prices.toml": """\
[my-finetune]
input = 0.30
cached_input = 0.15
output = 1.20

[gpt-4o-mini]
input = 1
output = 2
""",
    "models.toml": """\
[models.my-finetune]
input = 0.30
cached_input = 0.15
output = 1.20

[models."gpt-4o-mini"]
input = 1
output = 2
""",
    "prices.json": """\
{"my-finetune": {"input": 0.30, "cached_input": 0.15, "output": 1.20},
 "gpt-4o-mini": {"input": 1, "output": 2}}
""",
}


@pytest.mark.parametrize("name", sorted(PRICE_FILES))
def test_price_file_overrides_win(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(PRICE_FILES[name], encoding="utf-8")
    table = PriceTable.from_file(path)
    assert table.version.endswith(f" + overrides from {name}")

    # 1M input of which 400k cached, 1M output: 0.6M * 0.30 + 0.4M * 0.15 + 1M * 1.20 = 1.44.
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=400_000)
    assert table.cost("openai", "my-finetune", usage) == 1.44
    assert table.cost(None, "my-finetune-2025-01-31", usage) == 1.44

    # The override beats genai-prices' $0.15/$0.60 under every spelling of the name.
    small = Usage(input_tokens=1_200, output_tokens=300)  # 1,200 * 1 + 300 * 2 = 1,800 micro-dollars
    for provider, model in [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o-mini-2024-07-18"),  # date suffix
        ("openrouter", "openai/gpt-4o-mini"),  # provider prefix
        ("openrouter", "openai/gpt-4o-mini-2024-07-18"),  # both
        ("azure", "gpt-4o-mini-20240718"),  # compact date
    ]:
        assert table.cost(provider, model, small) == 0.0018, (provider, model)

    # Models without an override still come from genai-prices; unknown ones stay unpriced.
    assert table.cost("openai", "gpt-4.1-mini", Usage(1_000_000, 0)) == 0.4
    assert table.cost("openai", "another-finetune", small) is None


def test_provider_specific_override(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("azure/gpt-4o-mini: {input: 10, output: 10}\n", encoding="utf-8")
    table = PriceTable.from_file(path)
    usage = Usage(input_tokens=1_200, output_tokens=300)
    assert table.cost("azure", "gpt-4o-mini-2024-07-18", usage) == 0.015
    assert table.cost("openai", "gpt-4o-mini-2024-07-18", usage) == 0.00036


def test_overrides_in_code() -> None:
    table = PriceTable({"local-llama": ModelPrice(input=0, output=0)})
    assert table.cost("openai", "local-llama", Usage(5_000, 5_000)) == 0.0  # priced as free, on purpose
    assert table.version.endswith("+ 1 override(s)")
    cache = PriceTable({"m": ModelPrice(input=2, output=4, cached_input=1, cache_write=3)})
    # 100 uncached * 2 + 50 read * 1 + 50 written * 3 + 10 output * 4 = 440 micro-dollars.
    assert cache.cost(None, "m", Usage(200, 10, cached_tokens=50, cache_write_tokens=50)) == 0.00044


# --- malformed price files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("prices.yaml", "- a\n- list\n", ["mapping of model name to prices", "got list"]),
        ("prices.yaml", "", ["mapping of model name to prices", "got nothing"]),
        ("prices.yaml", "my-model: 0.3\n", ["model 'my-model'", "expected a mapping with 'input'"]),
        (
            "prices.yaml",
            "my-model:\n  input: abc\n  output: 1\n",
            ["model 'my-model'", "key 'input'", "non-negative number", "'abc'"],
        ),
        ("prices.yaml", "my-model: {input: -1, output: 1}\n", ["model 'my-model'", "key 'input'", "-1"]),
        ("prices.yaml", "my-model: {input: 1, output: true}\n", ["model 'my-model'", "key 'output'", "True"]),
        (
            "prices.yaml",
            "my-model: {input: 1, output: 2, cachedinput: 0.5}\n",
            ["model 'my-model'", "unknown key 'cachedinput'", "input, output, cached_input, cache_write"],
        ),
        ("prices.yaml", "my-model: {input: 1}\n", ["model 'my-model'", "missing key 'output'"]),
        ("prices.yaml", "my-model: {output: 1}\n", ["model 'my-model'", "missing key 'input'"]),
        ("prices.yaml", "my-model: {input: 1, output: [\n", ["not valid YAML"]),
        (
            "prices.yaml",
            "models: {m: {input: 1, output: 1}}\nextra: 1\n",
            ["unknown top-level key(s) 'extra'", "under 'models'"],
        ),
        ("prices.toml", '[my-model]\ninput = "0.3"\noutput = 1\n', ["model 'my-model'", "'input'", "'0.3'"]),
        ("prices.toml", "[my-model\ninput = 1\n", ["not valid TOML"]),
        ("prices.json", "{not json", ["not valid JSON"]),
        ("prices.json", '{"m": {"input": NaN, "output": 1}}', ["model 'm'", "key 'input'", "non-negative"]),
        ("prices.json", "[]", ["mapping of model name to prices"]),
        ("prices.txt", "m: {input: 1, output: 1}", ["unsupported file type '.txt'", ".yaml, .yml, .toml"]),
    ],
)
def test_malformed_price_file(tmp_path: Path, name: str, text: str, expected: list[str]) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        PriceTable.from_file(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message
    assert "\n" not in message  # one readable line


def test_missing_price_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot be read: No such file"):
        PriceTable.from_file(path)


# --- token kinds at their own rates ---------------------------------------------------------


def test_one_hour_cache_writes_claude_haiku_4_5() -> None:
    # Published: input $1/M, cache read $0.10/M, 5-minute write $1.25/M, 1-hour write $2/M,
    # output $5/M. 4,000 input = 100 uncached + 900 read + 1,000 5-minute + 2,000 1-hour writes:
    # 100 + 90 + 1,250 + 4,000 + 300 * 5 = 6,940 micro-dollars (5-minute rate for all: 4,440).
    usage = Usage(4_000, 300, cached_tokens=900, cache_write_tokens=3_000, cache_write_1h_tokens=2_000)
    assert PriceTable().cost("anthropic", "claude-haiku-4-5", usage) == pytest.approx(0.00694, abs=1e-12)


def test_override_prices_every_token_kind(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "acme-llm-7:\n  input: 1.0\n  cached_input: 0.1\n  cache_write: 1.25\n  cache_write_1h: 2.0\n"
        "  output: 5.0\n  reasoning_output: 8.0\n",
        encoding="utf-8",
    )
    usage = Usage(
        4_000,
        300,
        cached_tokens=900,
        cache_write_tokens=3_000,
        cache_write_1h_tokens=2_000,
        reasoning_tokens=100,
    )
    # 100 * 1 + 900 * 0.1 + 1,000 * 1.25 + 2,000 * 2 + 200 * 5 + 100 * 8 = 7,240 micro-dollars
    assert PriceTable.from_file(path).cost(None, "acme-llm-7", usage) == pytest.approx(0.00724, abs=1e-12)


def test_override_defaults_one_hour_writes_to_the_write_price_and_reasoning_to_output() -> None:
    table = PriceTable({"acme": ModelPrice(input=1.0, output=5.0, cache_write=1.25)})
    usage = Usage(3_000, 300, cache_write_tokens=3_000, cache_write_1h_tokens=2_000, reasoning_tokens=100)
    # 3,000 * 1.25 + 300 * 5 = 5,250 micro-dollars
    assert table.cost(None, "acme", usage) == pytest.approx(0.00525, abs=1e-12)


def test_gemini_thoughts_at_a_separate_reasoning_price(tmp_path: Path) -> None:
    # Google listed gemini-2.5-flash-preview-05-20 at $0.15 input, $0.60 output, $3.50 thinking
    # output; a price file can say so. 8 * 0.15 + 8 * 0.60 + 25 * 3.50 = 93.5 micro-dollars.
    path = tmp_path / "prices.yaml"
    path.write_text(
        "gemini-2.5-flash-preview-05-20: {input: 0.15, output: 0.60, reasoning_output: 3.50}\n",
        encoding="utf-8",
    )
    usage = Usage(8, 33, reasoning_tokens=25)
    cost = PriceTable.from_file(path).cost("google", "gemini-2.5-flash-preview-05-20", usage)
    assert cost == pytest.approx(93.5e-6, abs=1e-12)


# --- aliases ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "aliases:\n  prod-chat: gpt-4o-mini\n",
        "aliases:\n  azure/prod-chat: gpt-4o-mini\n",
        '{"aliases": {"prod-chat": "gpt-4o-mini"}, "models": {"x": {"input": 1, "output": 1}}}',
    ],
)
def test_aliases_price_a_deployment_as_its_model(tmp_path: Path, text: str) -> None:
    path = tmp_path / ("prices.json" if text.startswith("{") else "prices.yaml")
    path.write_text(text, encoding="utf-8")
    table = PriceTable.from_file(path)
    # gpt-4o-mini: 1,200 * 0.15 + 300 * 0.60 = 360 micro-dollars
    assert table.cost("azure", "prod-chat", Usage(1_200, 300)) == pytest.approx(0.00036, abs=1e-12)
    assert table.model_for("azure", "prod-chat") == "gpt-4o-mini"
    assert PriceTable().cost("azure", "prod-chat", Usage(1_200, 300)) is None


def test_alias_to_an_overridden_model(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("aliases: {prod: acme}\nmodels:\n  acme: {input: 1.0, output: 2.0}\n", encoding="utf-8")
    assert PriceTable.from_file(path).cost("azure", "prod", Usage(1_000, 1_000)) == pytest.approx(0.003)


# --- lookups are cached -------------------------------------------------------------------------


def test_a_model_is_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_crewguard import genai_price

    lookups: list[tuple[str | None, str]] = []
    real = genai_price.genai_quote

    def counting(provider: str | None, model: str) -> genai_price.GenaiQuote | None:
        lookups.append((provider, model))
        return real(provider, model)

    monkeypatch.setattr(genai_price, "genai_quote", counting)
    table = PriceTable()
    for n in range(50):
        assert table.cost("openai", "gpt-4o-mini", Usage(1_000 + n, 10)) is not None
        assert table.cost("openai", "acme-unknown", Usage(1_000, 10)) is None  # misses cached too
    assert lookups == [("openai", "gpt-4o-mini"), ("openai", "acme-unknown")]
