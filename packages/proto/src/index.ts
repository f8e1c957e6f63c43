/**
 * The dino-coord wire protocol: types generated from every .proto file in proto/ (see
 * scripts/generate.js), plus the protocol version.
 */
import { dino } from "./generated/wire";

export { dino };
export { PROTOCOL_VERSION } from "./version";

export const FrameHeader = dino.collective.FrameHeader;
export type FrameHeader = dino.collective.FrameHeader;
export type IFrameHeader = dino.collective.IFrameHeader;
export const CollectiveKind = dino.collective.CollectiveKind;
export type CollectiveKind = dino.collective.CollectiveKind;
export const FrameType = dino.collective.FrameType;
export type FrameType = dino.collective.FrameType;
