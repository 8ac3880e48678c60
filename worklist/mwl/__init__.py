"""The Modality Worklist adapter: the C-FIND SCP, and the streaming and thread plumbing it uses."""
