"""The Slack face: a Slack Bolt app over the engine (HTTP at /slack/events, or Socket Mode)."""
