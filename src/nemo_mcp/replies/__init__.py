"""Text policy for the agent's words: which tool a request belongs to, and GUI talk rewritten."""
