"""The bench's memory attribution: what a stage adds to the night's peak is its own peak
above the peak of every other moment of the night."""

from tests.tools.bench import Measured


def test_a_stage_adds_its_peak_above_the_rest_of_the_night():
    # the night: 1,000 MB before, 1,600 MB during the stage (two spans), 1,500 MB after
    # it, 1,580 MB in the moment after a span, while its freed memory still leaves
    memory = [(0.0, 1000.0), (1.0, 1600.0), (2.0, 1580.0), (4.0, 1200.0), (5.0, 1300.0)]
    memory += [(7.0, 1500.0)]
    measured = Measured(wall=8.0, peak_mb=1600.0, output="", memory=memory)
    assert measured.peaks_within([(0.5, 1.5), (4.5, 5.5)], tail=1.0) == (1600.0, 1500.0)
    # a stage below the rest of the night's peak adds nothing to it
    assert measured.peaks_within([(4.5, 5.5)], tail=1.0) == (1300.0, 1600.0)
