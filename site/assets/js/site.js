// Pages without a script of their own get the header's.
import "./header.js";
