export { buildProgram } from "./cli";
