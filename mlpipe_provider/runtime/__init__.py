"""What operators do at run time, kept apart from the operator classes so DAG parsing stays light."""
