"""Recipes: the model, its schema, the DAG, the files a recipe reads and the jobs made from it."""
