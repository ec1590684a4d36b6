"""The app's routers, one module per area: runs, features, chat, ask (grounded answers), evals (RSP reports and
computer-use trajectories). Each serves its HTML pages and the JSON API behind them."""
