"""llmhub: a private ChatGPT-style hub over Ollama and AWS Bedrock."""

__version__ = "0.1.0"
