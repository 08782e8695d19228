"""Amazon Bedrock: `BedrockProvider`, and the modules it is made of, one per API family."""

from .provider import BedrockProvider

__all__ = ["BedrockProvider"]
