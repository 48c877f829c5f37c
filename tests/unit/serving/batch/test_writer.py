"""The outputs: fields spelled as csv.writer spells them, numbers that read back as the same doubles."""

import csv
import io
import json

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from serving.batch import writer as writer_module
from serving.batch.lines import score_lines

from tests.unit.serving.batch.helpers import predictor_of


@given(st.one_of(st.none(), st.text(), st.text(alphabet=',"\n\r a\u00e9'), st.integers(), st.floats(allow_nan=False)))
@example('say "hi"')
@example("a\nb")
@example("a\rb")
@example("a,b")
@example(None)
@example("")
def test_a_field_is_spelled_as_csv_writer_spells_it(value):
    out = io.StringIO()
    csv.writer(out).writerow([value, "end"])  # the excel dialect; not alone: alone, "" is quoted
    assert writer_module.csv_field(value) + ",end\r\n" == out.getvalue()


def test_ids_that_need_quoting_come_back_as_they_were_given():
    model, p = predictor_of()
    ids = ['say "hi"', "two\nlines", "carriage\rreturn", "a,b", 1.5, True, [1, 2]]
    lines = [json.dumps({"id": i, **row}) for i, row in zip(ids, model.instances, strict=False)]
    predictions, errors = io.StringIO(), io.StringIO()  # not run(): an id's own \r is kept, quoted
    result = score_lines(io.BytesIO("\n".join(lines).encode()), "in.jsonl", p, predictions, errors)
    assert (result.predicted, errors.getvalue()) == (len(ids), "row_id,field,message\n")
    assert predictions.getvalue().splitlines()[1].startswith('"say ""hi""",')  # as csv.writer quotes it
    predictions.seek(0)
    assert [r["row_id"] for r in csv.DictReader(predictions)] == [i if type(i) is str else str(i) for i in ids]


def test_an_error_line_with_a_carriage_return_in_its_id_or_field_reads_back_as_one_line():
    model, p = predictor_of()
    rows = [{"id": "cr\rid", **model.instances[0], "odd\rname": 1}, {"id": "ok", **model.instances[1]}]
    predictions, errors = io.StringIO(), io.StringIO()
    score_lines(io.BytesIO("\n".join(map(json.dumps, rows)).encode()), "in.jsonl", p, predictions, errors)
    errors.seek(0)
    assert [(e["row_id"], e["field"], e["message"]) for e in csv.DictReader(errors)] == [
        ("cr\rid", "odd\rname", "unknown feature")]
    predictions.seek(0)
    assert [r["row_id"] for r in csv.DictReader(predictions)] == ["ok"]


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=2, max_size=40,
                       unique=True).filter(lambda v: len(v) % 2 == 0),
       ids=st.sampled_from(["numbers", "text"]))
def test_written_predictions_read_back_as_the_same_doubles_with_their_ids_quoted_as_csv_quotes_them(values, ids):
    _, p = predictor_of("bc-catboost")
    output = np.array(values).reshape(-1, 2)
    row_ids = list(range(1, len(output) + 1)) if ids == "numbers" else [f'r,"{i}"' for i in range(len(output))]
    text = writer_module.Writer(p, io.StringIO(), io.StringIO(), headers=False).lines(row_ids, output)
    rows = list(csv.reader(io.StringIO(text)))
    assert [r[0] for r in rows] == [str(i) for i in row_ids]
    assert [r[1] for r in rows] == [str(p.classes[k]) for k in output.argmax(axis=1)]
    assert np.array_equal(np.array([[float(v) for v in r[2:]] for r in rows]), output)


def test_a_prediction_that_is_not_finite_is_written_as_python_spells_it():
    _, p = predictor_of("bc-catboost")
    text = writer_module.Writer(p, io.StringIO(), io.StringIO(), headers=False).lines([1, 2], np.array(
        [[np.inf, 0.25], [0.5, np.nan]]))
    assert text.splitlines() == [f"1,{p.classes[0]},inf,0.25", f"2,{p.classes[1]},0.5,nan"]  # argmax of NaN


def test_a_writer_is_for_an_unlabelled_file_unless_told():
    from tests.unit.serving.batch.test_lines import labelled_predictor

    _, p = labelled_predictor(target="species")
    predictions = io.StringIO()
    writer = writer_module.Writer(p, predictions, io.StringIO(), headers=True)
    assert writer.target is None and "actual" not in predictions.getvalue()
