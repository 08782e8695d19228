"""Model providers: one interface (`Provider`) over Ollama and AWS Bedrock."""
