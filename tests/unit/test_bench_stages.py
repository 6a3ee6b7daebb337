"""The bench's split of the dbt step: what follows its last node is publishing (the copies
into `main`, which grow with the contacts), not dbt's start-up."""

from tests.tools.bench import split_dbt_step


def test_what_follows_the_last_node_is_publishing_and_the_rest_is_dbts_start_up():
    # a step of 10 s ending at t=100; its nodes took 5 s and the last ended at t=98
    assert split_dbt_step(10.0, 100.0, 5.0, 98.0) == (3.0, 2.0)


def test_without_dbts_results_all_that_the_nodes_leave_is_start_up():
    assert split_dbt_step(10.0, 100.0, 5.0, None) == (5.0, 0.0)
