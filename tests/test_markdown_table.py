from metaembed.markdown_table import markdown_table


def test_pipe_table_keeps_cells_and_escapes_pipes():
    text = markdown_table(["budget", "P@1"], [["(1,1)", "8.90"], ["a|b", "0.10"]])
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| budget") and set(lines[1]) <= {"|", "-", ":"}
    assert "8.90" in lines[2]                      # formatted numbers are not re-parsed
    assert "a\\|b" in lines[3] and lines[3].count(" | ") == 1
