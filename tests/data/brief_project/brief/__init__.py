"""A small `crewai create crew`-style project: two @CrewBase crews and a Flow that uses them."""
