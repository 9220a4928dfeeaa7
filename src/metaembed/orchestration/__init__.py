"""What the Prefect flows in flows/ share: stage commands as tasks, their params, the local server.

flows/*.py stay thin (the flow's order of tasks and its command line) and import from here. Import
these modules after PREFECT_HOME is set: prefect reads its settings when first imported.
"""
