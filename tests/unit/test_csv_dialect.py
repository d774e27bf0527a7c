"""The CSV sniff and option merge of pipeline/data/csv_dialect.py (no Spark)."""

from __future__ import annotations

from pipeline.data.csv_dialect import csv_reader_options, has_quoted_line_break, header_names


def test_quoted_line_breaks_are_found_in_complete_records_only():
    assert has_quoted_line_break(b'id,text\n1,"two\nlines"\n2,x\n')
    assert has_quoted_line_break(b'id;text\r\n1;"a\r\nb"\r\n2;c\r\n', sep=";")
    assert not has_quoted_line_break(b'id,text\n1,"a ""quoted"" word"\n2,"x, y"\n')
    # A quote opened near the end of the head, its record cut off: no evidence either way.
    assert not has_quoted_line_break(b'id,text\n1,plain\n2,"cut off\nby the head')
    assert not has_quoted_line_break(b"id,text\n1,\xff\xfe\n")


def test_user_options_win_whatever_their_case():
    assert csv_reader_options({}, [b"a,b\n1,2\n"]) == {"quote": '"', "escape": '"'}
    assert csv_reader_options({}, [b'a,b\n1,"x\ny"\n2,3\n'])["multiLine"] == "true"
    mine = {"ESCAPE": "\\", "multiline": "false"}
    assert csv_reader_options(mine, iter(())) == {"quote": '"', **mine}

    def unread():
        raise AssertionError("the heads are not read when the user chose multiLine")
        yield b""

    assert csv_reader_options({"multiLine": "false"}, unread())["multiLine"] == "false"


def test_header_names_follow_quoting():
    assert header_names('\ufeff"id","a, b",c', ",") == ["id", "a, b", "c"]
    assert header_names("x;y", ";") == ["x", "y"]
