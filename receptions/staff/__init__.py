"""The signed-in workspace: the dashboard every role lands on and inviting colleagues."""
