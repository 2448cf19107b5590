import os
from tests.harness import run_dag, load_dagbag
from tests.harness import REPO

def test_probe(airflow_db, sandbox, mails):
    os.environ["PROBE_FAIL"]="1"
    bag = load_dagbag(REPO/"tests/dags/probe_dags.py")
    assert not bag.import_errors
    states = run_dag(bag.dags["ebs_probe"])
    print(states)
    print(mails)
    assert 0
