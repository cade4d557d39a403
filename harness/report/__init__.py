"""Static HTML report with PNG plots of collected results (`harness report`)."""
