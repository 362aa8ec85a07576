"""iotids toy Flower app: stock FedAvg driving the Rust `toy_node` SuperNodes."""
