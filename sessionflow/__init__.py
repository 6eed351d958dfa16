"""sessionflow: session-based, conversational recommendation platform."""
