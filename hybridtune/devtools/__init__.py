"""Developer tools: a mock OpenAI-compatible server for benchmarks and fault-injection tests."""
