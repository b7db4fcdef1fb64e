"""``python -m edge --config edge.yaml``: the edge agent without the rest of the ParkPulse CLI."""

import typer

from edge._cli import edge_command

if __name__ == "__main__":
    typer.run(edge_command)
